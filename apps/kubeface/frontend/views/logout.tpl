% rebase('layout', title='Log out', refresh=None)
<h2>Log out</h2>
<form id="logout" method="post" action="/logout">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <button type="submit">Log out {{user}}</button>
</form>
