"""Gateway throughput over real HTTP, per endpoint, against ``GET /v1/health``, per ingress.

    python -m marketplace.bench.gateway [--duration 10 --concurrency 32 --ingress both]

For each ingress (``haproxy``: Serve's HAProxy ingress, ``python``: Serve's default Python proxy)
a fresh subprocess sets ``RAY_SERVE_ENABLE_HA_PROXY`` before anything imports Ray (Serve reads it
once, and Ray's workers inherit it from the process that starts Ray), starts its own local Ray,
the actors and the gateway on a free port with SQLite in a temporary folder, and seeds a few
sellers, products (with far more stock than a run can sell) and buyers with tokens over HTTP.
Then this process measures, one after the other and for ``--duration`` seconds each after a short
warm-up, at ``--concurrency`` requests in flight:

    health    GET /v1/health                  no actor call: the ingress and the gateway alone
    product   GET /v1/products/{id}            the replica's leased copy, else a catalog-shard call
    search    GET /v1/products?q=...           a call to every catalog shard, merged
    cart      PUT /v1/cart/items/{id}          cart shard + catalog read + a SQLite commit
    checkout  POST /v1/orders                  the saga: order, reserve, pay, commit, ship
                                               (a fresh Idempotency-Key on every request)

The load comes from ``--client-procs`` separate processes driving geventhttpclient with one
greenlet per connection (keep-alive), so the generator is as cheap per request as Python gets.
Its own ceiling is measured first against a trivial server (a static HAProxy reply, one thread)
at the same concurrency, and every row reports the client's CPU (percent of one core, over all
client processes) and the whole machine's CPU, so the reader can tell what limited each figure.
A row counts requests that started and finished inside the measured window; a non-2xx answer (or,
for checkout, an order that is not ``confirmed``) is an error and is left out of the latencies.

It prints one table per ingress (rps, p50, p99, ratio to health), then where each endpoint's CPU
went: milliseconds per request by process role on this host (gateway replicas, each actor kind,
HAProxy, Serve, Ray, the load generator), read from /proc over each measured window. Then the
HAProxy/Python health ratio and whether the issues' goals were met (``config.py``: product read
>= 1.0x health, checkout >= 0.15x distributed and 0.30x colocated, health >= 0.20x the bare
no-op, Ray calls per checkout, HAProxy health >= 10x the Python proxy's); ``--json PATH``
writes every figure. Each subprocess shuts its Ray down at the end. Only ratios within one run
mean much: the figures move with whatever else runs on the machine.

The parts: ``config`` (what a run does), ``driver`` (the load-generator processes),
``ceiling`` (the load generator against a static reply), ``server`` (the marketplace
subprocess), ``run`` (one ingress, then all), ``report`` (tables and goals), ``command``
(the command line); CPU accounting is ``marketplace.bench.cpu``.
"""
