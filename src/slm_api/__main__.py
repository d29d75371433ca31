import sys

from slm_api.cli import main

sys.exit(main())
