import sys

from scgraphbench.forkserver import delegate

# a workflow job hands its command to the run's fork server when there is one
status = delegate(sys.argv[1:])
if status is None:
    from scgraphbench.cli import main

    status = main()
raise SystemExit(status)
