"""What a user asks for, before anything runs: study grids and run specs (``grid``), study files
(``studyfile``), built-in studies by name (``studies``), the method version (``identity``) and
``UserError``. No torch, no Ray: help, argument and study-file checks answer at once."""
