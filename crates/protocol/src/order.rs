//! The ordering rule of `check`, in one place.
//!
//! Concourse docs ("Implementing a resource type", check): print versions oldest first; when a
//! version is given and still valid, start with it and add everything newer; when nothing is
//! newer, print just that version; on the first check (no version) print only the latest; when
//! the given version is gone, print the latest. The trap (PEERS.md): when one returned version
//! is new, Concourse treats the LAST element as the newest even if it was known before, so the
//! list must never end with an older version or an alias.

/// Versions to print for `check`, given what the resource currently sees.
///
/// `available` is every currently valid version, oldest first (duplicates are tolerated: the
/// newest position wins). `given` is the request's version, if any.
pub fn versions_since<V: PartialEq>(given: Option<&V>, available: Vec<V>) -> Vec<V> {
    let available = dedup_keep_last(available);
    match given.and_then(|g| available.iter().position(|v| v == g)) {
        Some(i) => available.into_iter().skip(i).collect(),
        // First check, or the given version no longer exists: only the latest.
        None => available.into_iter().last().into_iter().collect(),
    }
}

fn dedup_keep_last<V: PartialEq>(versions: Vec<V>) -> Vec<V> {
    let mut out: Vec<V> = Vec::with_capacity(versions.len());
    for v in versions {
        if let Some(i) = out.iter().position(|o| *o == v) {
            out.remove(i);
        }
        out.push(v);
    }
    out
}

/// Checks a `check` answer against the rule, for the harness: a resource that breaks it has a
/// bug, and Concourse would silently record the wrong "latest".
pub(crate) fn violation<V: PartialEq>(given: Option<&V>, answer: &[V]) -> Option<&'static str> {
    for (i, v) in answer.iter().enumerate() {
        if answer[..i].contains(v) {
            return Some("the same version appears twice");
        }
    }
    match given {
        None if answer.len() > 1 => Some("the first check must return only the latest version"),
        Some(g) => match answer.iter().position(|v| v == g) {
            Some(i) if i != 0 => Some("the given version must come first (oldest first)"),
            _ => None,
        },
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_check_returns_only_the_latest() {
        assert_eq!(versions_since(None, vec![1, 2, 3]), vec![3]);
        assert_eq!(versions_since::<i32>(None, vec![]), Vec::<i32>::new());
    }

    #[test]
    fn given_version_comes_first_then_everything_newer() {
        assert_eq!(versions_since(Some(&2), vec![1, 2, 3, 4]), vec![2, 3, 4]);
    }

    #[test]
    fn nothing_newer_returns_just_the_given_version() {
        assert_eq!(versions_since(Some(&4), vec![1, 2, 3, 4]), vec![4]);
    }

    #[test]
    fn a_vanished_version_yields_the_latest() {
        assert_eq!(versions_since(Some(&9), vec![1, 2, 3]), vec![3]);
        assert_eq!(
            versions_since(Some(&9), Vec::<i32>::new()),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn never_ends_with_an_old_version_even_when_listed_twice() {
        // An alias listed again after newer versions (e.g. `latest` re-pointed) moves to its
        // newest position instead of ending the list with a stale element.
        assert_eq!(versions_since(Some(&1), vec![1, 2, 1, 3]), vec![1, 3]);
        assert_eq!(versions_since(None, vec![3, 1, 3]), vec![3]);
        let got = versions_since(Some(&2), vec![1, 2, 3, 2]);
        assert_eq!(got, vec![2]);
        assert_eq!(violation(Some(&2), &got), None);
        assert_eq!(
            violation(Some(&2), &[3, 2]),
            Some("the given version must come first (oldest first)")
        );
    }

    #[test]
    fn violations_are_named() {
        assert_eq!(
            violation(None, &[1, 2]),
            Some("the first check must return only the latest version")
        );
        assert_eq!(
            violation(Some(&1), &[1, 2, 2]),
            Some("the same version appears twice")
        );
        assert_eq!(violation(Some(&1), &[1, 2]), None);
        assert_eq!(violation(Some(&1), &[3]), None);
        assert_eq!(violation::<i32>(None, &[]), None);
    }
}
