// GET with a short timeout, for polling a server until it answers.
import http from 'node:http';
import https from 'node:https';

function get(client, url, options) {
  return new Promise((resolve, reject) => {
    const req = client.get(url, { ...options, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

export const httpGet = (url) => get(http, url, {});

// `ca`: the test CA the server's certificate is signed by (nothing else is trusted).
export const httpsGet = (url, ca) => get(https, url, { ca });
