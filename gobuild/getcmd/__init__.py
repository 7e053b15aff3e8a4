"""The parts of `gobuild get` (whose flow is gobuild/get.py): its errors and exit codes, Go-style flags,
terminal output, and the safe install of the downloaded binary."""
