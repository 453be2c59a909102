// The engine side of the console hand-off, as `consolegate demo` plays it. A real
// engine does the same with its own ticket endpoint (see web/README.md).
const CONSOLE_URL = new URL('/console.html', location.href);
const status = document.getElementById('engine-status');
let consoleWindow = null;

// A fresh ticket for every connect: tickets are short-lived and may be single-use.
async function freshTicket() {
  const res = await fetch('/demo/ticket', { method: 'POST' });
  if (!res.ok) throw new Error(`the demo ticket endpoint answered HTTP ${res.status}`);
  return res.json(); // {ticket, password, title, kind}
}

async function sendTicket(target) {
  try {
    const { ticket, password, title } = await freshTicket();
    // The target origin pins the message to the console page's origin: if the window
    // navigated elsewhere, the browser drops the ticket instead of leaking it.
    target.postMessage({ type: 'consolegate:connect', ticket, password, title }, CONSOLE_URL.origin);
    status.textContent = 'Ticket sent to the console.';
  } catch (err) {
    status.textContent = `Could not get a ticket: ${err.message}`;
  }
}

window.addEventListener('message', (event) => {
  if (event.origin !== CONSOLE_URL.origin || !consoleWindow || event.source !== consoleWindow) return;
  const type = event.data && event.data.type;
  if (type === 'consolegate:ready' || type === 'consolegate:need-ticket') sendTicket(event.source);
  // Why a session ended, and whether the console page reconnects by itself.
  if (type === 'consolegate:closed') {
    const { code, sentence, retry } = event.data;
    status.textContent = `Console closed (${code}): ${sentence}${retry ? ' It reconnects by itself.' : ''}`;
  }
});

document.getElementById('open-console').addEventListener('click', () => {
  // Opened in the click itself (before any await) so popup blockers allow it.
  consoleWindow = window.open(CONSOLE_URL.href, 'consolegate-demo-console', 'width=900,height=700');
  status.textContent = consoleWindow ? 'Console opened; waiting for it to be ready…' : 'The browser blocked the console window.';
});
