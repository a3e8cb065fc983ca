"""An interactive program for `nimbus run`: it thinks of a number and
answers each guess you type. Run it with your terminal attached
(`nimbus run examples/run/number.py`) or feed it guesses
(`printf '50\n25\n' | nimbus run examples/run/number.py -- 30`)."""
import random
import sys

secret = int(sys.argv[1]) if len(sys.argv) > 1 else random.randint(1, 100)
print("I am thinking of a number from 1 to 100. Your guess?")
for tries, line in enumerate(sys.stdin, 1):
    try:
        guess = int(line)
    except ValueError:
        print("That is not a number.", file=sys.stderr)
        continue
    if guess == secret:
        print("Right, in %d tries." % tries)
        sys.exit(0)
    print("Higher." if guess < secret else "Lower.")
print("Out of guesses: it was %d." % secret)
sys.exit(1)
