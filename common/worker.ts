import { existsSync } from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Start a worker thread from a module path given without extension.
 *
 * In a build (`dist/`) the compiled `.js` file is loaded directly. When running from source
 * (jest, `tsx`), the `.ts` file is loaded through tsx's CommonJS hook inside the worker, so
 * the same code path works in tests, local mode and the container image.
 */
export function startWorker(modulePathNoExt: string, options: WorkerOptions = {}): Worker {
  const js = `${modulePathNoExt}.js`;
  if (existsSync(js)) return new Worker(js, options);
  const ts = `${modulePathNoExt}.ts`;
  if (!existsSync(ts)) throw new Error(`worker module not found: ${js} or ${ts}`);
  const boot = `require('tsx/cjs'); require(${JSON.stringify(ts)});`;
  return new Worker(boot, { ...options, eval: true });
}
