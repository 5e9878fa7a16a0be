"""Model families: the contract in :mod:`.catalog` (torch-free), classes bound to names in
:mod:`.registry`, one module per family."""
