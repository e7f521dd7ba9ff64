import os
import sys

# support.py sits next to the tests; the package itself comes from pyproject's pythonpath
sys.path.insert(0, os.path.dirname(__file__))
