"""Cases: cross-border incidents and investigations worked together by participating orgs.

- :mod:`qalqan.cases.service`: open, read, list and change cases; the status workflow; the
  orgs taking part and the people assigned.
- :mod:`qalqan.cases.tasks`: tasks, their work log, and tasks across cases.
- :mod:`qalqan.cases.activity`: timeline, comments with ``@org`` mentions, observables with
  their correlations, and the case page.
- :mod:`qalqan.cases.templates`: the shipped case templates.

Only participating orgs see a case, and of a TLP:RED case only the users named in it and the
orgs' administrators (``policy.case_visible_to``); every write is audited and lands on the
case's timeline.
"""

from __future__ import annotations

__all__: list[str] = []
