"""Per-beacon enrichment: device, traffic source, geography and a privacy-safe IP hash.

The collector calls these for every event, so they are pure (no I/O), cheap on repeated input and
total: any input, however broken, gives a value instead of an exception, because a beacon with a
strange referrer is still a beacon worth keeping. One module per concern: `user_agent`, `inflow`
(referrer and campaign classification), `geo` (the load balancer's header), `ip` (client address
and its hash), and `text` (decoding and the length cap they share). The names below are re-exported
for short call sites; new code imports from the concrete module.
"""

from shared.enrich.geo import Geo, parse_geo_header
from shared.enrich.inflow import Inflow, classify_inflow
from shared.enrich.ip import client_ip, hash_ip
from shared.enrich.text import MAX_LEN
from shared.enrich.user_agent import ClientInfo, parse_user_agent, warm_up

__all__ = [
    "MAX_LEN",
    "ClientInfo",
    "Geo",
    "Inflow",
    "classify_inflow",
    "client_ip",
    "hash_ip",
    "parse_geo_header",
    "parse_user_agent",
    "warm_up",
]
