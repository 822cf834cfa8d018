/**
 * The storage worker thread: the only place RocksDB is touched. RocksDB writes (and their
 * fsync) run synchronously on the calling thread, so keeping them here keeps the main event
 * loop free. Requests are executed strictly one at a time, in arrival order: writes the facade
 * sends in order hit the disk in order, and every read sees a quiescent database.
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort } from 'node:worker_threads';
import { Engine } from './engine';
import { marshalError } from './errors';
import type { Request, Response } from './protocol';

if (!parentPort) throw new Error('replica/storage/worker.ts must run as a worker thread');
const port = parentPort;

let engine: Engine | null = null;
const queue: Request[] = [];
let running = false;

async function handle(req: Request): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  if (req.op === 'open') {
    const opened = await Engine.open(req.params);
    engine = opened.engine;
    return { result: opened.result, transfer: [] };
  }
  if (!engine) throw new Error(`storage worker: ${req.op} before open`);
  switch (req.op) {
    case 'write':
      return { result: await engine.write(req.group), transfer: [] };
    case 'readEntries': {
      const p = await engine.readEntries(req.lo, req.hi, req.maxBytes);
      return { result: p.value, transfer: p.transfer };
    }
    case 'get': {
      const p = await engine.get(req.key);
      return { result: p.value, transfer: p.transfer };
    }
    case 'scan': {
      const p = await engine.scan(req);
      return { result: p.value, transfer: p.transfer };
    }
    case 'compact':
      return { result: await engine.compact(req.firstIndex), transfer: [] };
    case 'rewrite':
      return { result: await engine.rewrite(req.entries, req.ops), transfer: [] };
    case 'install':
      return { result: await engine.install(req.meta, req.state), transfer: [] };
    case 'exportOpen':
      return { result: engine.exportOpen(), transfer: [] };
    case 'exportChunk': {
      const p = await engine.exportChunk(req.exportId, req.after, req.maxBytes);
      return { result: p.value, transfer: p.transfer };
    }
    case 'exportClose':
      return { result: engine.exportClose(req.exportId), transfer: [] };
    case 'stageBegin':
      return { result: await engine.stageBegin(), transfer: [] };
    case 'stageBlock':
      return { result: await engine.stageBlock(req.block), transfer: [] };
    case 'installStaged':
      return { result: await engine.installStaged(req.meta), transfer: [] };
    case 'memory':
      // This thread's own V8 heap (an isolate of its own, not in the main thread's heap metrics).
      return { result: { ...engine.memory(), workerHeapBytes: getHeapStatistics().total_heap_size }, transfer: [] };
    case 'close':
      await engine.close();
      engine = null;
      return { result: null, transfer: [] };
  }
}

async function drain(): Promise<void> {
  running = true;
  for (let req = queue.shift(); req !== undefined; req = queue.shift()) {
    let res: Response;
    let transfer: ArrayBuffer[] = [];
    try {
      const out = await handle(req);
      res = { id: req.id, ok: true, result: out.result };
      transfer = out.transfer;
    } catch (err) {
      res = { id: req.id, ok: false, error: marshalError(err) };
    }
    port.postMessage(res, transfer);
  }
  running = false;
}

port.on('message', (req: Request) => {
  queue.push(req);
  if (!running) void drain();
});
