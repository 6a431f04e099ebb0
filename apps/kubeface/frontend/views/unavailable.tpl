% rebase('layout', title='Database unavailable', refresh=refresh)
<h2>The database is unavailable</h2>
<p>The images cannot be listed right now. This page tries again every {{refresh}} s and shows the table as soon as the database is back.</p>
