/*
 * CDP web push service worker (docs/tracker.md#web-push), served by collect at /sw.js.
 *
 * A service worker must come from the site's own origin, so the site serves a one-line file,
 * `importScripts('https://COLLECT_URL/sw.js');`, at the path the tracker registers (/cdp-sw.js by
 * default). It shows each push as a notification (payload: shared/messaging/webpush.py) and opens
 * its URL on a click. Its "수신거부" action ends the subscription in the browser and tells collect,
 * whose address and site the tracker put in the registration URL (?s=SITE&e=COLLECT_URL).
 */
(function (self) {
  'use strict';

  const params = new URL(self.location.href).searchParams;
  const site = params.get('s') || '';
  const collect = (params.get('e') || '').replace(/\/+$/, '');

  function notification(data) {
    const options = { body: String(data.body || ''), data: { url: typeof data.url === 'string' ? data.url : null } };
    if (typeof data.icon === 'string') options.icon = data.icon;
    // A tag (the delivery id) makes a repeated message replace the one shown, not add a second.
    if (typeof data.tag === 'string') options.tag = data.tag;
    if (Array.isArray(data.actions)) {
      options.actions = data.actions
        .filter((a) => a && typeof a.action === 'string' && typeof a.title === 'string')
        .slice(0, 2);
    }
    return options;
  }

  self.addEventListener('push', (event) => {
    let data = null;
    try {
      data = event.data ? event.data.json() : null;
    } catch (e) {
      data = null; // not ours: the browser shows its own default notice
    }
    if (!data || typeof data.title !== 'string') return;
    event.waitUntil(self.registration.showNotification(data.title, notification(data)));
  });

  // The unsubscribe a person asked for, as the tracker's unsubscribe() records it.
  function report(endpoint) {
    if (!site || !collect) return Promise.resolve();
    const now = Date.now();
    const event = {
      event_id: self.crypto.randomUUID(),
      type: 'push',
      ts: now,
      visitor_id: null,
      member_id: null,
      props: { subscribed: false, endpoint: endpoint },
    };
    const body = JSON.stringify({ site_id: site, sent_at: now, events: [event] });
    return fetch(collect + '/e', { method: 'POST', body: body, credentials: 'omit', keepalive: true }).then(
      () => 0,
      () => 0
    );
  }

  function unsubscribe() {
    return self.registration.pushManager.getSubscription().then((subscription) => {
      if (!subscription) return 0;
      const endpoint = subscription.endpoint;
      return subscription.unsubscribe().then(() => report(endpoint));
    });
  }

  self.addEventListener('notificationclick', (event) => {
    const shown = event.notification;
    shown.close();
    if (event.action === 'unsubscribe') {
      event.waitUntil(unsubscribe());
      return;
    }
    const url = shown.data && shown.data.url;
    if (url) event.waitUntil(self.clients.openWindow(url));
  });
})(self);
