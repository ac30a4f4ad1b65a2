"""The request inspector on the admin listener (``serve --inspect``).

    store.py   what is kept of each exchange, masked, and the replay
    view.py    what the page shows of one exchange (pure)
    routes.py  the page, its JSON API and live stream; page/ the page itself
"""
