//! Job-name globs as Concourse reads them in `passed:` and `groups[].jobs` (the gobwas/glob
//! syntax without separators): `*` any run of characters, `?` one character, `[abc]`, `[a-z]`,
//! `[!abc]`, `{a,b}` alternatives (which may hold globs), `\` escapes. Hand-written: globset
//! treats `/` and `**` differently and would pull in a regex engine for a few lines of matching.

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alt(Vec<Vec<Token>>),
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob(Vec<Token>);

impl Glob {
    /// Compiles `pattern`, or says why it is not a glob (an unclosed `[` or `{`, a trailing `\`).
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut at = 0;
        let tokens = parse(&chars, &mut at, false)?;
        if at != chars.len() {
            return Err(format!("unexpected '{}'", chars[at]));
        }
        Ok(Glob(tokens))
    }

    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        matches(&self.0, &name)
    }
}

/// Parses until the end, or (inside `{}`) until a `,` or `}` at this level.
fn parse(chars: &[char], at: &mut usize, nested: bool) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    while *at < chars.len() {
        let c = chars[*at];
        match c {
            ',' | '}' if nested => return Ok(out),
            '*' => {
                *at += 1;
                out.push(Token::Any);
            }
            '?' => {
                *at += 1;
                out.push(Token::One);
            }
            '\\' => {
                let next = chars
                    .get(*at + 1)
                    .ok_or("a trailing '\\' escapes nothing")?;
                out.push(Token::Char(*next));
                *at += 2;
            }
            '[' => {
                *at += 1;
                let negated = chars.get(*at) == Some(&'!');
                if negated {
                    *at += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let c = *chars.get(*at).ok_or("an unclosed '['")?;
                    *at += 1;
                    if c == ']' {
                        break;
                    }
                    if chars.get(*at) == Some(&'-') && chars.get(*at + 1).is_some_and(|&e| e != ']')
                    {
                        ranges.push((c, chars[*at + 1]));
                        *at += 2;
                    } else {
                        ranges.push((c, c));
                    }
                }
                if ranges.is_empty() {
                    return Err("an empty '[]'".into());
                }
                out.push(Token::Class { negated, ranges });
            }
            '{' => {
                *at += 1;
                let mut alternatives = Vec::new();
                loop {
                    alternatives.push(parse(chars, at, true)?);
                    match chars.get(*at) {
                        Some(',') => *at += 1,
                        Some('}') => {
                            *at += 1;
                            break;
                        }
                        _ => return Err("an unclosed '{'".into()),
                    }
                }
                out.push(Token::Alt(alternatives));
            }
            _ => {
                *at += 1;
                out.push(Token::Char(c));
            }
        }
    }
    Ok(out)
}

fn matches(tokens: &[Token], name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    match first {
        Token::Char(c) => name.first() == Some(c) && matches(rest, &name[1..]),
        Token::One => !name.is_empty() && matches(rest, &name[1..]),
        Token::Any => (0..=name.len()).any(|i| matches(rest, &name[i..])),
        Token::Class { negated, ranges } => {
            name.first()
                .is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                && matches(rest, &name[1..])
        }
        Token::Alt(alternatives) => alternatives.iter().any(|alt| {
            let mut joined = alt.clone();
            joined.extend_from_slice(rest);
            matches(&joined, name)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_gobwas_does_without_separators() {
        let cases = [
            ("deploy-*", "deploy-api", true),
            ("deploy-*", "build", false),
            ("deploy-{api,auth}", "deploy-auth", true),
            ("deploy-{api,auth}", "deploy-user", false),
            ("unit-?", "unit-1", true),
            ("unit-[0-9]", "unit-x", false),
            ("unit-[!0-9]", "unit-x", true),
            ("*", "a/b", true),
            ("{a*,b}-x", "abc-x", true),
            ("exact", "exact", true),
        ];
        for (glob, name, want) in cases {
            assert_eq!(
                Glob::new(glob).unwrap().matches(name),
                want,
                "{glob} ~ {name}"
            );
        }
        for bad in ["[abc", "{a,b", "a\\"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }
}
