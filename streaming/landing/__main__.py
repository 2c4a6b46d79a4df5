"""``python -m streaming.landing OPTIONS_JSON``: the landing child a ``LandingProcess`` starts."""

from streaming.landing.child import main

main()
