<h3>Name the faces</h3>
<table id="face-forms">
  <thead><tr><th>#</th><th>Now</th><th>This is…</th><th></th></tr></thead>
  <tbody>
% for f in image.faces:
    <tr id="face-{{f.index}}">
      <td class="num">{{f.index}}</td>
      <td class="person">{{f.person or 'unknown'}}</td>
      <td>
        <form class="name-face" method="post" action="/images/{{image.id}}/faces/{{f.index}}/name">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <select name="person_id">
            <option value="">(pick a person)</option>
% for pid, name in people_choices:
            <option value="{{pid}}">{{name}}</option>
% end
          </select>
          <input type="text" name="new_name" placeholder="or a new name" maxlength="255">
          <button type="submit">Name it</button>
        </form>
      </td>
      <td>
% if f.person:
        <form class="reject-face" method="post" action="/images/{{image.id}}/faces/{{f.index}}/reject">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <button type="submit">Not {{f.person}}</button>
        </form>
% end
      </td>
    </tr>
% end
  </tbody>
</table>
