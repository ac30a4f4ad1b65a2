"""The request inspector on the admin listener (``serve --inspect``).

exchange.py  what is held of one exchange: as seen (unmasked), as shown, as replayed
store.py     the last exchanges within a memory budget, live subscribers, replay
view.py      what the page shows of one exchange, every secret masked (pure)
routes.py    the page, its JSON API, the live stream and replay; page/ the page itself
"""
