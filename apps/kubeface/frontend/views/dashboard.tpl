% rebase('layout', title='Dashboard', refresh=refresh)
<p><a href="/">« Persons of Interest</a> · this page reloads every {{refresh}} s</p>
<section id="flow">
<h2>Images settled per minute, last hour ({{board.settled_last_hour}})</h2>
{{!board.chart()}}
<p class="legend">
% for s in final:
  <span class="status status-{{s.value}}">{{s.words}}</span>
% end
</p>
</section>
<table id="health">
  <tbody>
    <tr><th>Queue (nsqd, topic images)</th>
      <td id="queue">
% if board.queue:
        {{board.queue['waiting']}} waiting, {{board.queue['in flight']}} in flight, {{board.queue['deferred']}} deferred
% else:
        {{board.queue_note}}
% end
      </td></tr>
    <tr><th>Post to result, last hour</th>
      <td id="settle">p50 {{seconds(board.settle_p50)}}, p95 {{seconds(board.settle_p95)}}</td></tr>
    <tr><th>Recognition (Identify), since the face service started</th>
      <td id="recognition">
% if board.recognition_note:
        {{board.recognition_note}}
% else:
        p50 {{seconds(board.recognition_p50)}}, p95 {{seconds(board.recognition_p95)}} ({{board.recognition_calls}} calls)
% end
      </td></tr>
    <tr><th>Face service</th><td id="face-state">{{board.face_state}}</td></tr>
    <tr><th>Circuit breaker</th>
      <td id="breaker">{{board.breaker}}: {{board.breaker_held_back}} image(s) held back by it in the last 5 minutes</td></tr>
  </tbody>
</table>
<h2>Images per status</h2>
<table id="counts">
  <tbody>
% for s, n in board.counts.items():
    <tr><th><span class="status status-{{s.value}}">{{s.words}}</span></th><td class="num" data-status="{{s.value}}">{{n}}</td></tr>
% end
  </tbody>
</table>
