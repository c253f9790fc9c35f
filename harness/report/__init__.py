"""Reports: a campaign read back (``campaign``), the analyses studies compose (``sections``), page
pieces (``page``), figures (``figures``), report writing (``writer``), study files as studies
(``experiment``) and campaign comparisons (``compare``)."""
