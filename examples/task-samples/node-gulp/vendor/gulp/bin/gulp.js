#!/usr/bin/env node
// Stand-in for gulp's CLI: loads ./gulpfile.js and runs the named task (default "default").
const path = require('path');
const name = process.argv[2] || 'default';
const tasks = require(path.resolve('gulpfile.js'));
if (typeof tasks[name] !== 'function') {
  console.error(`Task never defined: ${name}`);
  process.exit(1);
}
try {
  tasks[name]();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
