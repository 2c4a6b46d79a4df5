"""``python -m streaming.landing OPTIONS_JSON``: the landing child a ``LandingProcess`` starts."""

from streaming.landing.process import main

main()
