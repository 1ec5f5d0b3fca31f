"""One module per page of the book: each holds that page's experiments, figures, explorers and
the result objects whose numbers the page glues. Chapter modules build on the core modules
(:mod:`scansnap.data`, :mod:`scansnap.models`, :mod:`scansnap.dynamics`, :mod:`scansnap.theory`,
:mod:`scansnap.metrics`, …) and on earlier chapters, never on later ones.

==================================  ===============================================
page (``book/``)                    module (``scansnap.chapters.``)
==================================  ===============================================
``intro.md``                        ``intro`` (coverage table, dependency map)
``ch1_setting.md``                  ``ch1_setting``
``ch2_reparameterization.md``       ``ch2_reparameterization``
``ch3_y_dynamics.md``               ``ch3_y_dynamics``
``ch4_fates_of_tokens.md``          ``ch4_fates_of_tokens``
``ch5_phase_transition.md``         ``ch5_phase_transition`` (a folder: ``sweep``, ``authors``, ``phase``)
``ch6_wikitext.md``                 ``ch6_wikitext``
``further_results.md``              ``further_results``
==================================  ===============================================
"""
