import sys

from courtesy_cli.main import main

sys.exit(main())
