% rebase('layout', title='Image %d' % image.id, refresh=refresh)
<p><a href="/">« All images</a></p>
<h2>Image {{image.id}}</h2>
<dl>
  <dt>Path</dt><dd class="path">{{image.path}}</dd>
  <dt>Status</dt><dd><span class="status status-{{image.status.value}}">{{image.status.words}}</span></dd>
  <dt>Person</dt><dd class="person">{{image.person or '—'}}</dd>
  <dt>Faces</dt><dd>{{'—' if image.face_count is None else image.face_count}}</dd>
% if image.last_error:
  <dt>Error</dt><dd class="error">{{image.last_error}}</dd>
% end
  <dt>Attempts</dt><dd>{{image.attempts}}</dd>
  <dt>Posted</dt><dd>{{image.created_at.strftime('%Y-%m-%d %H:%M:%S')}}</dd>
  <dt>Last update</dt><dd>{{image.updated_at.strftime('%Y-%m-%d %H:%M:%S')}}</dd>
</dl>
<div class="picture">
% if pic.problem:
  <p class="error">The picture cannot be shown: {{pic.problem}}</p>
% else:
%   stroke = max(2, round(max(pic.width, pic.height) / 250))
%   font = max(12, round(max(pic.width, pic.height) / 35))
  <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{pic.width}} {{pic.height}}" width="{{min(pic.width, 900)}}" role="img" aria-label="Image {{image.id}} with {{len(image.faces)}} face(s) marked">
    <image href="/images/{{image.id}}/picture" x="0" y="0" width="{{pic.width}}" height="{{pic.height}}"/>
%   for f in image.faces:
%     size = max(10, min(font, (f.right - f.left) // 3))  # small faces, small labels: less overlap
    <g class="face">
      <rect x="{{f.left}}" y="{{f.top}}" width="{{f.right - f.left}}" height="{{f.bottom - f.top}}" stroke-width="{{stroke}}"/>
      <text x="{{f.left}}" y="{{f.top - stroke * 2 if f.top > size + stroke * 2 else f.bottom + size}}" font-size="{{size}}" stroke-width="{{max(1, stroke * size // font)}}">{{f.person or 'unknown'}}</text>
    </g>
%   end
  </svg>
% end
</div>
% if image.faces:
<h3>Faces</h3>
<table id="faces">
  <thead><tr><th>#</th><th>Person</th><th>Box (top, right, bottom, left)</th><th>Known image</th><th>Distance</th></tr></thead>
  <tbody>
% for f in image.faces:
    <tr><td class="num">{{f.index}}</td><td class="person">{{f.person or 'unknown'}}</td><td>{{f.top}}, {{f.right}}, {{f.bottom}}, {{f.left}}</td><td>{{f.known_image or ''}}</td><td class="num">{{'' if f.distance is None else '%.3f' % f.distance}}</td></tr>
% end
  </tbody>
</table>
% end
% if get('people_choices') is not None and image.faces:
%   include('face_forms', image=image, people_choices=people_choices, csrf=csrf)
% end
