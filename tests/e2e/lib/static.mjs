// A minimal static file handler for the test's engine pages and the dev server.
import fs from 'node:fs/promises';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

// roots: {root, novnc?}: /novnc/... comes from `novnc`, everything else from `root`.
export function staticHandler({ root, novnc }) {
  return async (req, res) => {
    let pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let base = root;
    if (novnc && pathname.startsWith('/novnc/')) {
      base = novnc;
      pathname = pathname.slice('/novnc'.length);
    }
    if (pathname.endsWith('/')) pathname += 'index.html';
    const file = path.join(base, path.normalize(pathname));
    if (!file.startsWith(path.resolve(base))) {
      res.writeHead(404).end();
      return;
    }
    try {
      const data = await fs.readFile(file);
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
        'Cache-Control': 'no-store',
      });
      res.end(data);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  };
}
