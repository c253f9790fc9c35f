"""Execution: planning and running a campaign (``campaign``), Ray and local backends (``backends``),
the long-lived worker (``worker``), adaptive rounds (``adaptive``) and simulated runs
(``simulate``). torch and Ray are imported only where a run is really trained or scheduled."""
