"""Side-by-side HTTP and WebSocket benchmark of ruvicorn and its peers, in one command.

    python bench/run.py            # full run (~25-30 min), writes bench/results/
    python bench/run.py --quick    # smoke run (~4 min): 2 rounds x 3 s, fewer rows,
                                   # writes bench/results-partial/ (--out DIR to choose)

Why it is built this way (details in bench/README.md):
- every server is pinned to one core and the load generator (wrk, or bench/wsload for the
  WebSocket echo) to the other, so a row measures the server's
  own cost per request, not how it competes with the load generator for a core;
- servers are interleaved (A B C, A B C, ...) and restarted for every round, so a slow
  minute on this shared machine spreads over all rows instead of sinking one of them;
- the spread (min-max over rounds) is printed next to every median, so a reader can see
  when two rows are not really different;
- CPU per request is read from /proc for the whole process tree of the server, which
  counts work done off the event loop (threads, helper processes) that req/s alone hides.

Only loopback is used, every run is bounded in time, and every server is stopped by its pid.

Modules, in the order a run uses them: cli (flags, plan), session (the measuring loop),
measure (one run), running (one server process), servers and workloads (what is compared),
load (wrk, wsload), probes and procfs (readiness, CPU and memory), aggregate, report,
chart and console (the results).
"""
