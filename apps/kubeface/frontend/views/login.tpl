% rebase('layout', title='Log in', refresh=None)
<h2>Log in</h2>
% if error:
<p class="error" id="login-error">{{error}}</p>
% end
<form id="login" method="post" action="/login">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="next" value="{{next}}">
  <p><label>Name <input type="text" name="name" value="{{name}}" autocomplete="username" maxlength="64" required autofocus></label></p>
  <p><label>Password <input type="password" name="password" autocomplete="current-password" maxlength="1024" required></label></p>
  <button type="submit">Log in</button>
</form>
<p class="note">Faces and names are shown to the users of this deployment only (README: Security).</p>
