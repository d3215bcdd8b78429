"""Command-line tools: argparse, printing and progress bars, kept out of the runtime modules under shared/."""
