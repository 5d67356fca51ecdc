# gdb script: records every function of a binary in the order it is first
# entered, natively (threads included), and writes the names to $TRACE_OUT.
#
#   TRACE_OUT=f TRACE_STDOUT=g gdb -q -batch -nx -x scripts/layout-trace.py --args BINARY ARGS…
#
# The program's standard output goes to $TRACE_STDOUT, apart from gdb's.
#
# Used by scripts/profile-layout.sh. Every function symbol of the binary
# (from `nm`) gets a breakpoint at its first instruction; a breakpoint that
# is hit is recorded and deleted, so each function stops the program once.
# Child processes are not followed; gdb keeps its breakpoints out of a vfork
# child, so what such a child runs before exec is not seen here.
import os
import subprocess

import gdb

for setting in (
    "pagination off",
    "confirm off",
    "follow-fork-mode parent",
    "detach-on-fork on",
    "print thread-events off",
    "print inferior-events off",
):
    gdb.execute(f"set {setting}")

# Stop at the first instruction, so the load address is known.
gdb.execute(f"starti > {os.environ['TRACE_STDOUT']}", to_string=True)
binary = os.path.realpath(gdb.current_progspace().filename)
inferior = gdb.selected_inferior()
with open(f"/proc/{inferior.pid}/maps") as maps:
    base = next(
        int(line.split("-")[0], 16)
        for line in maps
        if os.path.realpath(line.split()[-1]) == binary
    )

# One name per address: aliases share the function's section anyway.
functions = {}
nm = subprocess.run(
    ["nm", "--defined-only", binary], capture_output=True, text=True, check=True
)
for line in nm.stdout.splitlines():
    fields = line.split()
    if len(fields) == 3 and fields[1] in "tTwW":
        functions.setdefault(int(fields[0], 16), fields[2])

entry = int(gdb.parse_and_eval("$pc")) - base
pending = {}
for offset, name in functions.items():
    if offset == entry:
        continue
    breakpoint = gdb.Breakpoint(f"*{base + offset:#x}", internal=True)
    breakpoint.silent = True
    pending[breakpoint.number] = (breakpoint, name)

entered = [functions[entry]] if entry in functions else []


def record(event):
    if not isinstance(event, gdb.BreakpointEvent):
        return
    for breakpoint in event.breakpoints:
        hit = pending.pop(breakpoint.number, None)
        if hit is not None:
            entered.append(hit[1])
            hit[0].delete()


gdb.events.stop.connect(record)
while inferior.pid:
    try:
        gdb.execute("continue", to_string=True)
    except gdb.error:
        break

with open(os.environ["TRACE_OUT"], "w") as out:
    out.writelines(name + "\n" for name in entered)
