"""lowbit.tools: what sits on top of everything else — the command line, the demo, the per-layer
report and the mixed-precision search. Nothing in lowbit imports this package except the
`lowbit` command and the public re-exports in lowbit/__init__.py."""
