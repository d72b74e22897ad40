"""The persona kernel: what graphs are built on, below the graphs and above the toolkit.

- ``spec``: a persona (the validated YAML);
- ``config``: the one settings object (state folder, endpoints), resolved once at the edge;
- ``context``: the run context every node receives, prompts, tool selection;
- ``graphspec``: the contract every graph package exports (``SPEC``);
- ``governance``: the guards of the call pipeline (approval, dry run, audit) and fencing;
- ``models`` and ``cassette``: the model that answers (live, replayed, scripted, none);
- ``errors``: usage errors the CLI shows as one line.

The kernel imports only ``klaviyo_toolkit`` and libraries; a test keeps it so.
"""
