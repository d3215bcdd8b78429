// Test-shop glue (not part of the tracker): where the collector is and what the visitor chose.
// Query parameters `collect`, `flush` and `analytics` set it; sessionStorage carries it across
// in-site links, so the tracker's keys stay the only ones in localStorage.
(function () {
  var params = new URLSearchParams(location.search);
  ['collect', 'flush', 'analytics'].forEach(function (k) {
    if (params.has(k)) sessionStorage.setItem('shop.' + k, params.get(k));
  });
  window.SHOP = {
    collect: sessionStorage.getItem('shop.collect') || location.origin,
    flush: Number(sessionStorage.getItem('shop.flush') || 1000),
    analytics: sessionStorage.getItem('shop.analytics') !== '0',
    // What a consent banner does: remember the choice itself and tell the tracker.
    choose: function (analytics) {
      sessionStorage.setItem('shop.analytics', analytics ? '1' : '0');
      cdp('consent', { analytics: analytics, ads: analytics });
    },
  };
})();

// The snippet from docs/tracker.md, with the collector's address from the config above.
!function(w,d,u){if(w.cdp)return;var q=[],c=w.cdp=function(){q.push(arguments)};c.q=q;var s=d.createElement('script');s.async=true;s.src=u+'/tracker.js';(d.head||d.documentElement).appendChild(s)}(window,document,SHOP.collect);
cdp('init', 'demo-shop', {
  endpoint: SHOP.collect,
  flushInterval: SHOP.flush,
  consent: { analytics: SHOP.analytics, ads: false },
});
