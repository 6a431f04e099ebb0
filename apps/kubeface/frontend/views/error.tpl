% rebase('layout', title='Error %d' % code, refresh=None)
<h2>{{message}}</h2>
<p><a href="/">« All images</a></p>
