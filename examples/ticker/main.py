"""A handler that streams its result: it yields a line per step as the
work progresses, so `nimbus invoke ticker --stream` prints each line as
soon as it is produced instead of all of them at the end."""
import time


def handler(event, context):
    steps = int(event.get("steps", 5))
    delay = float(event.get("delay", 0.2))

    def progress():
        yield "starting %d steps\n" % steps
        for i in range(1, steps + 1):
            time.sleep(delay)  # stands for real work
            yield "step %d of %d done (%d ms left)\n" % (i, steps, context.get_remaining_time_in_millis())
        yield "finished\n"

    return progress()
