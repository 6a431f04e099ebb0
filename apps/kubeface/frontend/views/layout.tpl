<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}} · kube-face</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
% if get('refresh'):
<meta http-equiv="refresh" content="{{refresh}}">
% end
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #fafbfc; }
  h1 { font-size: 1.5rem; margin: 0 0 .75rem; }
  h1 a { color: inherit; text-decoration: none; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
  th { background: #eef1f5; font-weight: 600; }
  td.path { font-family: ui-monospace, monospace; word-break: break-all; }
  td.num { text-align: right; }
  .counts a { display: inline-block; margin: 0 .4rem .4rem 0; padding: .2rem .6rem; border-radius: 1rem;
              background: #eef1f5; color: #1d2330; text-decoration: none; }
  .counts a.current { background: #1d2330; color: #fff; }
  .status { padding: .1rem .45rem; border-radius: .3rem; white-space: nowrap; }
  .status-pending, .status-processing { background: #fff4d6; }
  .status-processed { background: #d9f5e1; }
  .status-unknown { background: #e4ecff; }
  .status-no_face { background: #eeeeee; }
  .status-failed { background: #ffdede; }
  .error { color: #a01010; }
  .pager { margin: .8rem 0; }
  .pager a { margin-right: 1rem; }
  .note { color: #5b6472; font-size: .9rem; }
  .picture svg { max-width: 100%; height: auto; border: 1px solid #ccd; background: #fff; }
  .picture rect { fill: none; stroke: #ff3b30; }
  .picture text { fill: #fff; paint-order: stroke; stroke: #000; font-weight: 700; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
  dt { font-weight: 600; }
  .nav { margin: 0 0 1rem; }
  ul.photos, ul.images { display: flex; flex-wrap: wrap; gap: .8rem; list-style: none; padding: 0; }
  img.thumb { border: 1px solid #ccd; background: #fff; }
  form { margin: .4rem 0; }
</style>
</head>
<body>
<h1><a href="/">Persons of Interest</a></h1>
% if get('user'):
<nav class="nav"><a href="/">Images</a> · <a href="/people">People</a> · <a href="/upload">Upload images</a> · <a id="logout-link" href="/logout">Log out {{user}}</a></nav>
% elif not get('login_page'):
<nav class="nav"><a href="/">Images</a> · <a href="/people">People</a> · <a href="/upload">Upload images</a></nav>
% end
{{!base}}
</body>
</html>
