% rebase('layout', title='Persons of Interest', refresh=refresh)
<p class="counts">
  <a href="/" class="{{'current' if status is None else ''}}">All: {{total}}</a>
% for s in Status:
  <a href="/?status={{s.value}}" class="{{'current' if status == s else ''}}" data-status="{{s.value}}">{{s.words}}: <span class="count">{{counts[s]}}</span></a>
% end
</p>
<p class="nav"><a href="/dashboard">Dashboard: is work flowing?</a></p>
<form id="person-filter" method="get" action="/">
% if status:
  <input type="hidden" name="status" value="{{status.value}}">
% end
  <label>Person <select name="person">
    <option value="">(everyone)</option>
% for pid, name in get('people_choices') or []:
    <option value="{{pid}}"{{!' selected' if pid == get('person') else ''}}>{{name}}</option>
% end
  </select></label>
  <button type="submit">Show</button>
</form>
% if refresh:
<p class="note">Work is pending: this page reloads every {{refresh}} s.</p>
% end
% if not images:
<p class="empty">No images{{' with status ' + status.words if status else ''}} yet. Post some with <code>curl -d '{"path": "unknown0001.jpg"}' http://HOST:8000/image/post</code>.</p>
% else:
<table id="images">
  <thead>
    <tr><th>ID</th><th>Path</th><th>Person</th><th>Status</th><th>Faces</th><th>Error</th><th>Last update</th><th>Picture</th></tr>
  </thead>
  <tbody>
% for im in images:
    <tr id="image-{{im.id}}">
      <td class="num"><a href="/images/{{im.id}}">{{im.id}}</a></td>
      <td class="path">{{im.path}}</td>
      <td class="person">{{im.person or ''}}</td>
      <td><span class="status status-{{im.status.value}}">{{im.status.words}}</span></td>
      <td class="num">{{'' if im.face_count is None else im.face_count}}</td>
      <td class="error">{{im.last_error or ''}}</td>
      <td>{{im.updated_at.strftime('%Y-%m-%d %H:%M:%S')}}</td>
      <td>
% if im.status.value != 'failed':
        <img class="thumb" src="/images/{{im.id}}/thumb" alt="" width="48">
% end
      </td>
    </tr>
% end
  </tbody>
</table>
% end
<p class="pager">
% q = (('status=' + status.value + '&') if status else '') + (('person=%d&' % person) if get('person') else '')
% if has_newer:
  <a href="/{{'?' + q.rstrip('&') if q else ''}}">« Newest</a>
  <a href="/?{{q}}after={{images[0].id}}" rel="prev">‹ Newer</a>
% end
% if has_older:
  <a href="/?{{q}}before={{images[-1].id}}" rel="next">Older ›</a>
% end
</p>
