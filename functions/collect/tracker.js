/*
 * CDP website tracker (docs/tracker.md; protocol in docs/collect-api.md).
 *
 * Collects page, land, identify, conv, custom and consent events, sends them in batches to the
 * collect endpoint and keeps every event in localStorage until the collector has answered for it,
 * so neither a reload nor a collector outage loses one. Without analytics consent it stores and
 * sends no identifier. Web push: subscribe() and unsubscribe() record the browser's subscription
 * (a push event) through the same queue. Served minified by shared/tracker.py.
 * Dependency-free ES2017; everything stays inside this closure except window.cdp.
 */
(function (w, d) {
  'use strict';

  const stub = w.cdp;
  if (stub && stub.version) return; // loaded twice: the first copy owns the queue

  const MAX_BATCH = 100; // events per request: the collector's limit
  const MAX_BYTES = 60000; // per request: sendBeacon and keepalive share a 64 KiB budget
  const FLUSH_AT = 20; // this many unsent events are sent at once instead of on the timer
  const MAX_QUEUE = 500; // stored events; past this the oldest are dropped
  const RETRY_MIN = 1000;
  const RETRY_MAX = 300000;
  const LEASE = 30000; // a send owns its events this long before another page may resend them
  const STRIKES = 3; // server errors (not outages) one event may meet before it is set aside
  const VID = '_cdp_vid';
  const VID_AGE = 63072000; // two years, in seconds
  const PREFIX = '_cdp_';
  // The consent ledger's purposes (docs/tracker.md); `ads` in a call stands for both ad purposes.
  const PURPOSES = ['analytics', 'ad_user_data', 'ad_personalization', 'marketing', 'night_marketing'];
  const PROOF = ['version', 'tcf', 'consent_mode']; // what a consent call may add as proof

  let site = '';
  let endpoint = '';
  let cookieDomain = '';
  let flushMs = 1000;
  let vapidKey = ''; // the applicationServerKey (CDP_VAPID_PUBLIC_KEY), from init or subscribe
  let pushWorker = '/cdp-sw.js'; // the site's file that imports collect's /sw.js
  // Every purpose refused until the page says otherwise: missing consent is no consent.
  let consent = {};
  PURPOSES.forEach((p) => { consent[p] = false; });
  let vid = null;
  let mid = null;
  let ls = null; // localStorage when usable; the queue lives in `mem` when it is not allowed
  let mem = [];
  const mine = {}; // event_id -> record, for the events this page has in flight
  let busy = false;
  let fails = 0;
  let retryAt = 0;
  let timer = 0;
  let due = 0;
  let unloading = false; // between pagehide and a bfcache pageshow
  const early = []; // calls made before init
  const enc = w.TextEncoder ? new w.TextEncoder() : null;

  function warn(...args) {
    try {
      console.warn('cdp:', ...args);
    } catch (e) {
      /* no console: nothing to do */
    }
  }

  // Wraps a callback so that a bug here never surfaces as an error in the host page.
  function guard(f) {
    return function (...args) {
      try {
        return f(...args);
      } catch (e) {
        warn(e);
      }
    };
  }

  function uuid() {
    const c = w.crypto;
    if (c.randomUUID) return c.randomUUID(); // absent outside secure contexts
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = '';
    for (let i = 0; i < 16; i++) h += (b[i] + 0x100).toString(16).slice(1);
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  }

  const bytes = (s) => (enc ? enc.encode(s).length : s.length * 3);
  const clip = (s, n) => String(s || '').slice(0, n);
  // A detached, JSON-safe copy: later changes by the page must not alter a queued event.
  const plain = (p) =>
    p && typeof p === 'object' && !Array.isArray(p) ? JSON.parse(JSON.stringify(p)) : {};

  // --- storage: only while analytics consent is given --------------------------------------

  const key = (name) => PREFIX + site + '_' + name;
  const stored = () => (consent.analytics ? ls : null);

  function read(name, fallback) {
    try {
      const v = ls && JSON.parse(ls.getItem(key(name)));
      return v == null ? fallback : v;
    } catch (e) {
      return fallback;
    }
  }

  // Small values (member id, retry state): if storage refuses them, memory is enough.
  function put(name, value) {
    const s = stored();
    try {
      if (s && value == null) s.removeItem(key(name));
      else if (s) s.setItem(key(name), JSON.stringify(value));
    } catch (e) {
      /* quota or a disabled store */
    }
  }

  function loadStored() {
    const q = read('q', []);
    return Array.isArray(q) ? q.filter((r) => r && r.e && typeof r.e.event_id === 'string') : [];
  }

  const load = () => (stored() ? loadStored() : mem);

  function save(q) {
    const s = stored();
    if (s) {
      try {
        if (q.length) s.setItem(key('q'), JSON.stringify(q));
        else s.removeItem(key('q'));
        return;
      } catch (e) {
        // Quota or a disabled store: carry on in memory rather than lose events.
        warn('localStorage unusable, queue kept in memory', e);
        ls = null;
      }
    }
    mem = q;
  }

  const saveRetry = () => put('r', fails ? { n: fails, at: retryAt } : null);

  // --- identity and consent ----------------------------------------------------------------

  function setCookie(value, maxAge, domain) {
    let c = VID + '=' + value + '; Path=/; Max-Age=' + maxAge + '; SameSite=Lax';
    if (domain) c += '; Domain=' + domain;
    if (w.location.protocol === 'https:') c += '; Secure';
    d.cookie = c;
  }

  function readVid() {
    const m = /(?:^|;\s*)_cdp_vid=([0-9A-Za-z-]{1,64})(?:;|$)/.exec(d.cookie);
    return m ? m[1] : null;
  }

  // Analytics allowed: pick up (or start) the visitor and refresh the cookie's two years.
  function remember() {
    vid = readVid() || uuid();
    setCookie(vid, VID_AGE, cookieDomain);
    mid = read('m', null);
    const r = read('r', null);
    if (r && r.n > 0) {
      fails = r.n | 0;
      retryAt = Math.min(+r.at || 0, Date.now() + RETRY_MAX);
    }
  }

  // Analytics denied: no cookie, no storage. Events collected earlier with consent are still
  // delivered, from memory.
  function forget() {
    mem = loadStored().concat(mem);
    try {
      ['q', 'm', 'r'].forEach((n) => ls && ls.removeItem(key(n)));
    } catch (e) {
      /* storage went away: nothing left to delete */
    }
    setCookie('', 0, '');
    if (cookieDomain) setCookie('', 0, cookieDomain);
    vid = null;
    mid = null;
  }

  // The purposes a call decides ({purpose: true/false}, `ads` for both ad purposes), or null when
  // one is not a purpose or not a boolean: such a call changes nothing.
  function chosen(c) {
    if (!c || typeof c !== 'object' || Array.isArray(c)) return null;
    const keys = Object.keys(c);
    const bad = keys.some((k) => typeof c[k] !== 'boolean' || (k !== 'ads' && PURPOSES.indexOf(k) < 0));
    if (bad) return null;
    const out = {};
    if ('ads' in c) out.ad_user_data = out.ad_personalization = c.ads;
    keys.forEach((k) => { if (k !== 'ads') out[k] = c[k]; });
    return out;
  }

  const refused = (what) =>
    warn(what, 'needs purposes (' + PURPOSES.join(', ') + ' or ads) set to true or false; ignored');

  // A decision: applied to storage at once, and sent as a consent event for the consent ledger.
  function setConsent(c, opts) {
    const next = chosen(c);
    if (!next || !Object.keys(next).length) return refused('consent');
    const was = consent.analytics;
    const before = [vid, mid];
    consent = Object.assign({}, consent, next);
    if (was && !consent.analytics) forget();
    if (!was && consent.analytics) {
      remember();
      const q = mem;
      mem = [];
      save(load().concat(q));
      saveRetry();
    }
    const props = { purposes: next };
    Object.keys(opts || {}).forEach((k) => {
      if (PROOF.indexOf(k) < 0) warn('consent: unknown option', k, 'ignored');
      else if (opts[k] != null) props[k] = opts[k];
    });
    // It names whom it concerns: the visitor identified after a grant, the one just forgotten
    // after a withdrawal (recorded against nobody, a withdrawal would leave the grant standing).
    const ev = make('consent', props);
    ev.visitor_id = vid || before[0];
    ev.member_id = mid || before[1];
    add(ev);
  }

  // --- events ------------------------------------------------------------------------------

  function make(type, props, member) {
    const a = consent.analytics;
    return {
      event_id: uuid(),
      type: type,
      ts: Date.now(),
      visitor_id: a ? vid : null,
      member_id: a ? (member === undefined ? mid : member) : null,
      url: clip(w.location.href, 2048),
      title: clip(d.title, 512),
      referrer: clip(d.referrer, 2048),
      consent: { analytics: a, ads: consent.ad_user_data },
      props: plain(props),
    };
  }

  function add(ev) {
    if (bytes(JSON.stringify(ev)) > MAX_BYTES - 200) return warn('event too large, dropped', ev);
    const q = load();
    q.push({ e: ev });
    if (q.length > MAX_QUEUE) {
      warn('queue full, dropped', q.splice(0, q.length - MAX_QUEUE).length, 'oldest events');
    }
    save(q);
    if (unsent(q, Date.now()) >= FLUSH_AT) flush();
    else schedule(flushMs);
  }

  // --- sending -----------------------------------------------------------------------------

  const free = (r, now, skip) =>
    !(r.l > now) && !mine[r.e.event_id] && !(skip && skip[r.e.event_id]);
  const unsent = (q, now) => q.filter((r) => free(r, now)).length;

  // The oldest free events that fit one request.
  function pick(q, now, skip) {
    const out = [];
    let size = 100; // the envelope
    for (const r of q) {
      if (out.length >= MAX_BATCH) break;
      if (!free(r, now, skip)) continue;
      // An event that met a server error travels alone, so it cannot hold back the others.
      if (r.x && out.length) continue;
      const n = bytes(JSON.stringify(r.e)) + 1;
      if (size + n > MAX_BYTES) break;
      out.push(r);
      size += n;
      if (r.x) break;
    }
    return out;
  }

  const body = (batch) =>
    JSON.stringify({ site_id: site, sent_at: Date.now(), events: batch.map((r) => r.e) });

  function schedule(ms) {
    const at = Date.now() + ms;
    if (timer && due <= at) return;
    clearTimeout(timer);
    due = at;
    timer = setTimeout(guard(() => { timer = 0; flush(); }), ms);
  }

  function flush() {
    if (busy || !site) return;
    const now = Date.now();
    if (retryAt > now) return schedule(retryAt - now);
    const q = load();
    const batch = pick(q, now);
    if (!batch.length) return;
    batch.forEach((r) => { r.l = now + LEASE; mine[r.e.event_id] = r; });
    save(q); // the lease tells other tabs and the next page that these are taken
    busy = true;
    // A string body goes as text/plain: a CORS "simple" request, so no preflight.
    const init = { method: 'POST', body: body(batch), keepalive: true, credentials: 'omit' };
    fetch(endpoint + '/e', init).then(
      guard((res) => {
        const st = res.status;
        if (st >= 400 && st < 500 && st !== 429) {
          res.text().then(
            (t) => warn('collector rejected', batch.length, 'events:', st, t.slice(0, 1000)),
            () => 0
          );
        }
        done(batch, st, retryAfter(res.headers.get('Retry-After')));
      }),
      guard(() => done(batch, 0, 0))
    );
  }

  function retryAfter(h) {
    if (!h) return 0;
    const ms = isNaN(+h) ? Date.parse(h) - Date.now() : +h * 1000;
    return ms > 0 ? Math.min(ms, RETRY_MAX) : 0;
  }

  function done(batch, status, after) {
    busy = false;
    batch.forEach((r) => delete mine[r.e.event_id]);
    // Unloading cancels the page's side of a keepalive fetch, not the request: it was handed over.
    if (unloading && !status) return;
    const now = Date.now();
    if (status && status < 500 && status !== 429) {
      // 2xx: durable. Other 4xx: retrying cannot help, so these leave the queue too.
      const gone = {};
      batch.forEach((r) => { gone[r.e.event_id] = 1; });
      const q = load().filter((r) => !gone[r.e.event_id]);
      save(q);
      fails = 0;
      retryAt = 0;
      saveRetry();
      const left = unsent(q, now);
      if (left >= FLUSH_AT) flush();
      else if (left) schedule(flushMs);
      return;
    }
    // Network error, 429 or 5xx: put the events back (the unload flush may have handed them over
    // meanwhile) and back off exponentially with jitter, never sooner than Retry-After. A server
    // error that is no outage (500, not 502-504) is a strike against each event sent: one the
    // collector keeps failing on is set aside (kept under `x`), so it cannot block the queue.
    const strike = status >= 500 && (status < 502 || status > 504) ? 1 : 0;
    let q = load();
    const have = {};
    q.forEach((r) => { have[r.e.event_id] = r; });
    const back = [];
    batch.forEach((r) => {
      const x = (r.x || 0) + strike;
      if (have[r.e.event_id]) Object.assign(have[r.e.event_id], { l: 0, x });
      else back.push({ e: r.e, x });
    });
    q = back.concat(q);
    const aside = q.filter((r) => r.x >= STRIKES);
    if (aside.length) {
      warn('collector kept failing on', aside.length, 'events; set aside');
      put('x', read('x', []).concat(aside.map((r) => r.e)).slice(-50));
      q = q.filter((r) => !(r.x >= STRIKES));
    }
    save(q);
    fails++;
    const base = Math.min(RETRY_MAX, RETRY_MIN * Math.pow(2, fails - 1));
    const wait = Math.max(base / 2 + (Math.random() * base) / 2, after);
    retryAt = now + wait;
    saveRetry();
    schedule(wait);
  }

  function beacon(batch) {
    try {
      return w.navigator.sendBeacon(endpoint + '/e', body(batch));
    } catch (e) {
      return false;
    }
  }

  // The page is hidden or going away.
  // The timer is left running: if the page survives (a hidden tab), retries must go on.
  function leave() {
    if (!site) return;
    const now = Date.now();
    const q = load();
    if (fails && stored()) {
      // The collector is failing and a beacon's fate is never known: keep everything for the next
      // page and free our leases so that it need not wait for them.
      q.forEach((r) => { if (mine[r.e.event_id]) r.l = 0; });
      return save(q);
    }
    // Healthy: the browser delivers beacons and keepalive fetches after the page is gone, so hand
    // them over and forget them; sending the in-flight ones again would only duplicate them.
    const gone = {};
    Object.keys(mine).forEach((id) => { gone[id] = 1; });
    for (let batch = pick(q, now, gone); batch.length; batch = pick(q, now, gone)) {
      if (!beacon(batch)) break; // over the browser's budget: the rest waits for the next page
      batch.forEach((r) => { gone[r.e.event_id] = 1; });
    }
    save(q.filter((r) => !gone[r.e.event_id]));
  }

  // --- web push ----------------------------------------------------------------------------

  const nav = w.navigator;
  const pushable = () => !!(nav.serviceWorker && w.PushManager && w.Notification);

  function keyBytes(k) {
    const s = atob(k.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((k.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }

  // The worker, registered with the site and collect's address for its unsubscribe report.
  function register(worker) {
    const url = worker + (worker.indexOf('?') < 0 ? '?' : '&') +
      's=' + encodeURIComponent(site) + '&e=' + encodeURIComponent(endpoint);
    return nav.serviceWorker.register(url).then((reg) => {
      const next = reg.installing || reg.waiting;
      if (reg.active || !next) return reg;
      return new Promise((resolve) => {
        next.addEventListener('statechange', () => next.state === 'activated' && resolve(reg));
      });
    });
  }

  function pushEvent(props) {
    add(make('push', props));
  }

  // Ask for permission (only inside the page's own click: browsers quiet or refuse prompts without
  // one), subscribe with our VAPID key, and record the subscription. Resolves to what happened.
  function subscribe(opts) {
    opts = opts || {};
    if (!pushable()) return Promise.resolve('unsupported');
    const key = String(opts.vapidKey || vapidKey);
    if (!key) return warn('subscribe needs the VAPID public key (init vapidKey)'), Promise.resolve('error');
    const ua = nav.userActivation;
    const granted = w.Notification.permission === 'granted';
    if (!granted && ua && !ua.isActive) {
      warn('subscribe must be called from a click on your own button');
      return Promise.resolve('no_gesture');
    }
    const asked = granted ? Promise.resolve('granted') : w.Notification.requestPermission();
    return asked
      .then((p) => {
        if (p !== 'granted') return 'denied';
        return register(String(opts.worker || pushWorker))
          .then((reg) => reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }))
          .then((sub) => {
            const j = sub.toJSON();
            const props = { subscribed: true, endpoint: j.endpoint, keys: j.keys, expiration_time: j.expirationTime };
            if (opts.version) props.version = String(opts.version);
            pushEvent(props);
            return 'subscribed';
          });
      })
      .catch((e) => (warn('subscribe failed:', e), 'error'));
  }

  function current(opts) {
    if (!pushable()) return Promise.resolve(null);
    const worker = String((opts && opts.worker) || pushWorker);
    return nav.serviceWorker
      .getRegistration(new URL(worker, w.location.href).href)
      .then((reg) => (reg ? reg.pushManager.getSubscription() : null));
  }

  // End this browser's subscription and record it; resolves 'unsubscribed' or 'none'.
  function unsubscribe(opts) {
    return current(opts)
      .then((sub) => {
        if (!sub) return 'none';
        const gone = sub.endpoint;
        return sub.unsubscribe().then(() => (pushEvent({ subscribed: false, endpoint: gone }), 'unsubscribed'));
      })
      .catch((e) => (warn('unsubscribe failed:', e), 'error'));
  }

  // What a subscribe button should show: 'subscribed', 'unsubscribed', 'denied' or 'unsupported'.
  function pushState(opts) {
    if (!pushable()) return Promise.resolve('unsupported');
    if (w.Notification.permission === 'denied') return Promise.resolve('denied');
    return current(opts).then((sub) => (sub ? 'subscribed' : 'unsubscribed'), () => 'unsubscribed');
  }

  // --- commands ----------------------------------------------------------------------------

  const commands = {
    init(siteId, opts) {
      if (site) return warn('init called twice; ignored');
      opts = opts || {};
      if (!siteId || !opts.endpoint) return warn('init needs a site id and an endpoint');
      site = String(siteId);
      endpoint = String(opts.endpoint).replace(/\/+$/, '');
      cookieDomain = opts.cookieDomain ? String(opts.cookieDomain) : '';
      flushMs = opts.flushInterval > 0 ? +opts.flushInterval : 1000;
      if (opts.vapidKey) vapidKey = String(opts.vapidKey);
      if (opts.pushWorker) pushWorker = String(opts.pushWorker);
      try {
        ls = w.localStorage; // throws in some sandboxed frames
      } catch (e) {
        ls = null;
      }
      // The state the page stored from its banner; what it leaves out stays refused.
      const given = opts.consent == null ? {} : chosen(opts.consent);
      if (!given) refused('init consent');
      Object.assign(consent, given);
      const pending = early.splice(0);
      // A withdrawal called before init: know the visitor it withdraws, but write no cookie only to
      // delete it a moment later.
      let stays = consent.analytics;
      pending.forEach((a) => {
        const c = a[0] === 'consent' && chosen(a[1]);
        if (c && typeof c.analytics === 'boolean') stays = c.analytics;
      });
      if (consent.analytics && stays) remember();
      else if (consent.analytics) {
        vid = readVid();
        mid = read('m', null);
      } else forget();
      w.addEventListener('pagehide', guard(() => { unloading = true; leave(); }));
      w.addEventListener('pageshow', guard(() => {
        unloading = false; // back from the bfcache: the page lives again
        if (unsent(load(), Date.now())) schedule(flushMs);
      }));
      d.addEventListener(
        'visibilitychange',
        guard(() => d.visibilityState === 'hidden' && leave())
      );
      w.addEventListener('online', guard(() => { retryAt = 0; flush(); }));
      pending.forEach((a) => cdp(...a));
      if (unsent(load(), Date.now())) schedule(flushMs); // resume what an earlier page left
    },
    page(props) {
      add(make('page', props));
      add(make('land', {})); // the collector classifies the arrival from referrer and URL
    },
    identify(memberId, traits) {
      if (memberId == null || memberId === '') return warn('identify needs a member id');
      if (!consent.analytics) return; // nothing may tie this browser to a person
      mid = String(memberId);
      put('m', mid);
      add(make('identify', traits, mid));
    },
    conv(convType, props) {
      if (!convType) return warn('conv needs a type');
      add(make('conv', Object.assign(plain(props), { conv_type: String(convType) })));
    },
    event(name, props) {
      if (!name) return warn('event needs a name');
      add(make('event', Object.assign(plain(props), { name: String(name) })));
    },
    consent: setConsent,
    subscribe,
    unsubscribe,
    pushState,
    reset() {
      mid = null;
      put('m', null);
      if (consent.analytics) {
        vid = uuid();
        setCookie(vid, VID_AGE, cookieDomain);
      }
    },
  };

  function cdp(cmd, ...args) {
    try {
      if (!Object.prototype.hasOwnProperty.call(commands, cmd)) return warn('unknown command', cmd);
      if (cmd !== 'init' && !site) {
        if (early.length < 100) early.push([cmd, ...args]);
        return;
      }
      return commands[cmd](...args); // subscribe, unsubscribe and pushState answer with a Promise
    } catch (e) {
      warn(cmd, 'failed:', e);
    }
  }

  cdp.version = 1;
  w.cdp = cdp;
  ((stub && stub.q) || []).forEach((a) => cdp(...a)); // calls the snippet queued before we loaded
})(window, document);
