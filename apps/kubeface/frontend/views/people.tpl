% rebase('layout', title='People', refresh=None)
<h2>People</h2>
<form class="search" method="get" action="/people">
  <label>Name <input type="search" name="q" value="{{q}}" maxlength="255"></label>
  <button type="submit">Search</button>
</form>
% if not people_list:
<p class="empty">No one{{' named like "%s"' % q if q else ''}} yet.</p>
% else:
<table id="people">
  <thead><tr><th>Photo</th><th>Name</th><th>Photos</th><th>Images</th></tr></thead>
  <tbody>
% for p in people_list:
    <tr id="person-{{p.id}}">
      <td>
% if p.id in first:
        <img class="thumb" src="/photos/{{first[p.id]}}/thumb" alt="" width="64">
% end
      </td>
      <td class="person"><a href="/people/{{p.id}}">{{p.name}}</a></td>
      <td class="num">{{p.photos}}</td>
      <td class="num">{{p.images}}</td>
    </tr>
% end
  </tbody>
</table>
% end
<p class="pager">
% if offset > 0:
  <a href="/people?q={{quote(q)}}&amp;offset={{max(0, offset - page)}}" rel="prev">‹ Previous</a>
% end
% if offset + page < total:
  <a href="/people?q={{quote(q)}}&amp;offset={{offset + page}}" rel="next">Next ›</a>
% end
</p>
<h3>Add a person</h3>
<form id="new-person" method="post" action="/people">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Name <input type="text" name="name" required maxlength="255"></label>
  <button type="submit">Add</button>
</form>
