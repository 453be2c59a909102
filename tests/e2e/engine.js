// The engine side of the hand-off, as a portal on its own origin would do it (this
// is the code web/README.md shows). Query: ?console=<console page URL>&scenario=<name>
// [&embed=iframe&allow=fullscreen][&lang=de]; the test's engine server signs a ticket
// for the scenario at POST /ticket. The console page's messages are kept in
// window.engineLog, its consolegate:closed messages in window.closedMessages.
const params = new URLSearchParams(location.search);
const CONSOLE_URL = new URL(params.get('console'));
const scenario = params.get('scenario') || 'good';
const log = (line) => {
  window.engineLog.push(line);
  document.getElementById('log').textContent += line + '\n';
};
window.engineLog = [];
let consoleWindow = null;

async function sendTicket(target) {
  const res = await fetch(`/ticket?scenario=${encodeURIComponent(scenario)}`, { method: 'POST' });
  const { ticket, password, title } = await res.json();
  const message = { type: 'consolegate:connect', ticket, password, title };
  if (params.get('lang')) message.lang = params.get('lang');
  target.postMessage(message, CONSOLE_URL.origin);
  log('sent connect');
}

window.closedMessages = [];
window.addEventListener('message', (event) => {
  if (event.origin !== CONSOLE_URL.origin || event.source !== consoleWindow) return;
  const type = event.data && event.data.type;
  log(`got ${type}`);
  if (type === 'consolegate:closed') window.closedMessages.push(event.data);
  if (type === 'consolegate:ready' || type === 'consolegate:need-ticket') sendTicket(event.source);
});

document.getElementById('open-console').addEventListener('click', () => {
  if (params.get('embed') === 'iframe') {
    // Embedded: the proxy's frame-ancestors must allow this (engine) origin.
    const frame = document.createElement('iframe');
    frame.src = CONSOLE_URL.href;
    // ?allow=fullscreen: what a portal must add for the console's full screen button.
    if (params.get('allow')) frame.allow = params.get('allow');
    frame.width = '900';
    frame.height = '560';
    document.body.append(frame);
    consoleWindow = frame.contentWindow;
  } else {
    consoleWindow = window.open(CONSOLE_URL.href, '_blank');
  }
});
