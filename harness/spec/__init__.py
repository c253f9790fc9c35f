"""What a user asks for, before anything runs: study grids and run specs (``grid``), study files
(``studyfile``), built-in studies by name (``studies``), the method version (``identity``) and
``UserError``. No torch, no Ray: help, argument and study-file checks answer at once.

The name is kept: it holds the specification of runs (``RunSpec``, the grids and study files that
expand into them), the sense in which the docs and the CLI use "spec" (``--method`` spec, run spec);
tests live in ``tests/``, never here. A rename would touch 43 files for a word the code already
defines."""
