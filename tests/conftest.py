"""Test-suite settings.

Hypothesis runs derandomized and without an example database by default, so
a CI run is reproducible and writes nothing into the work tree. Set
HYPOTHESIS_PROFILE=explore to search fresh random examples (and keep a
database of failures) while developing.
"""

import os
import sys

from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py, tests/reference.py

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
