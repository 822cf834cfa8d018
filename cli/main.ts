import { run } from './program';

/** Entry of the `daftka` command (bin/daftka runs this file through tsx). */

// `daftka consume … | head -3`: a closed pipe is the reader being done, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

void run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Long-polls and keep-alive sockets must not hold the process once the command is done.
  process.stdout.write('', () => process.exit(code));
});
