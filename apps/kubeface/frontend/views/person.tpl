% rebase('layout', title=person.name, refresh=None)
<p><a href="/people">« All people</a></p>
<h2 class="person-name">{{person.name}}</h2>
<form id="rename" method="post" action="/people/{{person.id}}/rename">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Name <input type="text" name="name" value="{{person.name}}" required maxlength="255"></label>
  <button type="submit">Rename</button>
</form>
<h3>Photos</h3>
% if not photos:
<p class="empty">No photos yet: add one so that this person is recognised.</p>
% end
<ul class="photos">
% for ph in photos:
  <li id="photo-{{ph.id}}">
    <img class="thumb" src="/photos/{{ph.id}}/thumb" alt="photo {{ph.id}} of {{person.name}}" width="96">
    <span class="note">{{ph.source}}</span>
    <form method="post" action="/people/{{person.id}}/photos/{{ph.id}}/delete">
      <input type="hidden" name="csrf" value="{{csrf}}">
      <button type="submit">Remove</button>
    </form>
  </li>
% end
</ul>
<form id="add-photo" method="post" action="/people/{{person.id}}/photos" enctype="multipart/form-data">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Photo <input type="file" name="file" accept="image/*" required></label>
  <label>Face (when the photo shows several: 0, 1, … left to right) <input type="number" name="face" min="0" max="999"></label>
  <button type="submit">Add photo</button>
</form>
<h3>Images ({{total}})</h3>
% if not images:
<p class="empty">Not recognised in any image yet.</p>
% end
<ul class="images">
% for im in images:
  <li><a href="/images/{{im.id}}"><img class="thumb" src="/images/{{im.id}}/thumb" alt="image {{im.id}}" width="96"><br>{{im.id}}</a></li>
% end
</ul>
<p class="pager">
% if offset > 0:
  <a href="/people/{{person.id}}?offset={{max(0, offset - page)}}" rel="prev">‹ Newer</a>
% end
% if offset + page < total:
  <a href="/people/{{person.id}}?offset={{offset + page}}" rel="next">Older ›</a>
% end
</p>
<form id="delete-person" method="post" action="/people/{{person.id}}/delete">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <button type="submit">Delete {{person.name}} and their photos</button>
</form>
