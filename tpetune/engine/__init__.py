"""tune(): the option objects, the driver loop (propose, dispatch, record, stop rules, resume)
and re-running one stored trial."""
