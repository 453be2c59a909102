// The floor page of bench/first-frame.mjs: noVNC's RFB pointed straight at ?url=, with
// ?password= for VNC authentication, as noVNC's own pages do it. No engine hand-off and
// no console page: what is left is the WebSocket, RFB and the first framebuffer update.
import RFB from '/novnc/core/rfb.js';

const params = new URLSearchParams(location.search);
const rfb = new RFB(document.getElementById('screen'), params.get('url'), {
  credentials: { password: params.get('password') || '' },
  shared: true,
  wsProtocols: ['binary'],
});
rfb.addEventListener('disconnect', (e) => { window.floorDisconnected = e.detail; });
