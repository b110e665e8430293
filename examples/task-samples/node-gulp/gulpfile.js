// The repository's tasks: `gulp test` runs the tests.
exports.test = function test() {
  require('./test.js');
};
