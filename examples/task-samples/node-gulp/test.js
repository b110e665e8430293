const assert = require('assert');
assert.strictEqual('gulp'.toUpperCase(), 'GULP');
console.log('gulp test: 1 passing');
