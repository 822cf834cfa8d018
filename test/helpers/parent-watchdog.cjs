// Preloaded into test child processes (`node --require test/helpers/parent-watchdog.cjs …`):
// the parent holds the write end of our stdin; when the parent goes away — however it ends,
// kill -9 included — stdin reaches EOF and this process kills itself, so a test run that dies
// never leaves servers behind. (Jest does not run the parent's own 'exit' listeners.)
// Preloads also run in worker threads, whose stdin is empty: only the main thread watches.
'use strict';
/* global process, require */
// eslint-disable-next-line @typescript-eslint/no-require-imports
if (require('node:worker_threads').isMainThread) {
  process.stdin.on('end', () => process.kill(process.pid, 'SIGKILL'));
  process.stdin.on('error', () => process.kill(process.pid, 'SIGKILL'));
  process.stdin.resume();
}
