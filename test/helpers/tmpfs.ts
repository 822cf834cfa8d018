/**
 * A size-limited directory for disk-full tests: a tmpfs mounted on a fresh temp dir (the tests
 * run as root). If mount is impossible the test fails loudly — a disk-full test that skips
 * would pass while testing nothing.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Mount a tmpfs of `sizeMiB` on a new directory; returns it. Throws with the reason if it cannot. */
export function mountTmpfs(tag: string, sizeMiB: number): string {
  const dir = mkdtempSync(path.join(tmpdir(), `daftka-tmpfs-${tag}-`));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(
      `cannot mount a tmpfs on ${dir} (the disk-full tests need root or CAP_SYS_ADMIN): ${e.stderr?.toString().trim() || e.message}`,
    );
  }
  return dir;
}

/** Unmount (lazily, so a straggling process cannot keep it busy) and remove the directory. */
export function unmountTmpfs(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Free bytes (statfs bavail × bsize) of the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/**
 * Fill the filesystem of `dir` with a file until writing fails with ENOSPC (or only `leaveBytes`
 * stay free). Returns the filler's path; delete it to give the space back.
 */
export function fillDisk(dir: string, leaveBytes = 0, name = 'filler'): string {
  const file = path.join(dir, name);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  try {
    for (;;) {
      const room = freeBytes(dir) - leaveBytes;
      if (room <= 0) break;
      try {
        writeSync(fd, chunk, 0, Math.min(chunk.length, room));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

export function removeFile(file: string): void {
  unlinkSync(file);
}
