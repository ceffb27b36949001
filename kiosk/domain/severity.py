"""How urgent an alert is. Its own module, free of imports: the command line offers the levels as choices
before it loads anything else."""

# Least urgent first; "critical" waits on a person now (a suspension, a frozen chain).
SEVERITIES = ("info", "warning", "critical")
