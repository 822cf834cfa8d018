import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { DaftkaError } from '../common/errors';

/**
 * A request body into memory, bounded: `limitBytes` after decompression (a small gzip of many
 * megabytes is refused as it inflates, not after). Content-Encoding identity, gzip, deflate or
 * br. Errors are the problems the client gets: 413 over the limit (a declared Content-Length
 * over it is refused before a byte is read), 415 for another encoding, 400 when the body is cut
 * short or does not decompress.
 */
export function readRequestBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  let source: Readable = req;
  switch (encoding) {
    case 'identity':
    case '': {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(tooLarge(limitBytes));
      break;
    }
    case 'gzip':
      source = req.pipe(createGunzip());
      break;
    case 'deflate':
      source = req.pipe(createInflate());
      break;
    case 'br':
      source = req.pipe(createBrotliDecompress());
      break;
    default:
      return Promise.reject(
        new DaftkaError('UNSUPPORTED_MEDIA_TYPE', 'Content-Encoding must be identity, gzip, deflate or br'),
      );
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let settled = false;
    const finish = (err: DaftkaError | null) => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      req.off('close', onClose);
      if (err === null) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes));
      else {
        if (source !== req) req.unpipe();
        reject(err);
      }
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limitBytes) return finish(tooLarge(limitBytes));
      chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = (err: Error) =>
      finish(
        source === req
          ? cutShort()
          : new DaftkaError('INVALID_REQUEST', `request body is not valid ${encoding}: ${err.message}`),
      );
    // 'close' before the whole body arrived: the client went away (or its connection broke).
    const onClose = () => {
      if (!req.complete) finish(cutShort());
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    req.on('close', onClose);
  });
}

function tooLarge(limitBytes: number): DaftkaError {
  return new DaftkaError('PAYLOAD_TOO_LARGE', `request body is larger than ${limitBytes} bytes`, {
    extra: { limit: limitBytes },
  });
}

function cutShort(): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', 'request body was cut short by the client');
}
